"""Scans: the spec (:mod:`~relaxsim.scan.spec`), the resumable store (:mod:`~relaxsim.scan.store`),
execution on Dask (:mod:`~relaxsim.scan.execute`) and the grouping of points by the fields they
vary (:mod:`~relaxsim.scan.groups`)."""
