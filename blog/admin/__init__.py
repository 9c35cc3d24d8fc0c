"""The admin area, ``/admin``: the stats page and the RQ dashboard, for admins only."""
