"""Onboarding and the control plane: ingest -> validate -> quality -> publish immutable versions.

``onboard`` (pipeline), ``check``, ``set_rules``, ``rollback``, ``quarantine``, ``set_contract_status``
(control); the store of versions, events and results (store); serving versions at load (serving).
"""

from .control import check, quarantine, rollback, set_contract_status, set_rules, versions  # noqa: F401
from .pipeline import OnboardingRejected, OnboardReport, onboard  # noqa: F401
