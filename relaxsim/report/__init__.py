"""Reports of runs and scans (:mod:`~relaxsim.report.document`) and their figures
(:mod:`~relaxsim.report.figures`)."""
