"""Onboarding and the control plane: ingest -> validate -> quality -> publish immutable versions.

``onboard`` (the pipeline, then the marts reading the dataset), ``check``, ``set_rules``, ``rollback``,
``set_contract_status`` (control, the facade); the quarantined rows, governed, and their release (quarantine);
the store of versions, events and results (store); serving versions at load (serving).
"""

from .control import check, onboard, rollback, set_contract_status, set_rules, versions  # noqa: F401
from .pipeline import OnboardingRejected, OnboardReport  # noqa: F401
