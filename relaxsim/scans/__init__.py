"""Scans: the spec (:mod:`~relaxsim.scans.spec`), the resumable store (:mod:`~relaxsim.scans.store`),
execution on Dask (:mod:`~relaxsim.scans.execute`) and the grouping of points by the fields they
vary (:mod:`~relaxsim.scans.groups`)."""
