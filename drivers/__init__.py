"""The in-tree store drivers.

Each registers in the entry-point group ``glance_store_ng.drivers`` exactly as
a third-party driver would; nothing imports them by name.
"""
