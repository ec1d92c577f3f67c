"""In-tree store drivers (registered as ``glance_store_ng.drivers`` entry points)."""
