"""Event files -> audit log: one partition's loop, the ownership rule, and the serial, --jobs and Dask drivers."""
