"""Reading and validating a mesh: ODPS data products, ODCS contracts and ``mesh.yaml``."""

from .loader import load_mesh
from .model import Column, Contract, Dataset, Domain, Mesh, Port, Quantum, Source

__all__ = ["load_mesh", "Column", "Contract", "Dataset", "Domain", "Mesh", "Port", "Quantum", "Source"]
