"""Pages a person looks at: a run's report, a comparison of runs, and the diagnostics behind both."""
from .compare import write_compare
from .diagnose import Finding, diagnose
from .page import write_report

__all__ = ["Finding", "diagnose", "write_compare", "write_report"]
