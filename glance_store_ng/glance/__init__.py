"""glance_store_ng's drivers inside OpenStack Glance: glance_store drivers that delegate to ours.

Glance loads its store drivers from glance_store's entry-point group
``glance_store.drivers``. This package registers four there, ``gsng_file``,
``gsng_s3``, ``gsng_swift`` and ``gsng_rbd``: each is a
``glance_store.driver.Store`` that hands the work to our store of that kind
(one-pass native hashing, zero skipping, bounded memory, our retries), and
writes and reads the same location URIs as glance_store's own driver, so an
existing backend's type can be switched from ``file`` to ``gsng_file`` (and so
on) with every image still readable.

Only Glance imports this package (through the entry points); it needs
glance_store (from the clone: ``pip install '.[glance]'``). The rest of the
library never imports it, nor OpenStack's config stack. See the README, "Run
it in Glance".
"""
