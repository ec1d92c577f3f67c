"""What a real Glance cannot show without Barbican or Keystone, shown in-process through
glance_store's own multi-store API: signed images feed Glance's verifier every byte, and
options the operator did not set keep our defaults. (A fresh Python: glance_store keeps
its configuration in oslo.config's global CONF.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import hashlib, io, json, os, sys
    from oslo_config import cfg
    from glance_store import capabilities, location, multi_backend

    root = sys.argv[1]
    conf_file = os.path.join(root, "glance-api.conf")
    with open(conf_file, "w") as f:
        f.write(
            "[DEFAULT]\\nenabled_backends = fast:gsng_file, old:file\\n"
            "[glance_store]\\ndefault_backend = fast\\n"
            f"[fast]\\nfilesystem_store_datadir = {root}/fast\\nfilesystem_store_fsync = false\\n"
            f"[old]\\nfilesystem_store_datadir = {root}/old\\n"
        )
    conf = cfg.CONF
    conf.register_opt(cfg.DictOpt("enabled_backends"))
    conf(["--config-file", conf_file], project="glance")
    multi_backend.register_store_opts(conf)
    multi_backend.create_multi_stores(conf)
    store = multi_backend.get_store_from_store_identifier("fast")

    class Verifier:
        seen = hashlib.sha256()
        def update(self, data):
            self.seen.update(data)

    data = os.urandom(3 << 20) + bytes(1 << 20)
    verifier = Verifier()
    uri, size, md5, multihash, meta = store.add(
        "b6d0c5c2-8a51-4f8e-9f5e-1d2c3b4a5f60", io.BytesIO(data), len(data), "sha512",
        verifier=verifier,
    )
    where = location.get_location_from_uri_and_backend(uri, "fast", conf=conf)
    chunks, length = store.get(where, offset=10, chunk_size=100)
    print(json.dumps({
        "uri": uri, "size": size, "meta": meta,
        "md5": md5 == hashlib.md5(data).hexdigest(),
        "multihash": multihash == hashlib.sha512(data).hexdigest(),
        "verified": verifier.seen.hexdigest() == hashlib.sha256(data).hexdigest(),
        "range": b"".join(chunks) == data[10:110] and length == 100,
        "fsync": store._store.conf["filesystem_store_fsync"],
        "thin": store._store.conf["filesystem_thin_provisioning"],
        "url_prefix": store.url_prefix,
        "reusable": store.is_capable(capabilities.BitMasks.DRIVER_REUSABLE),
    }))
    """
)


def test_signed_images_feed_the_verifier_and_unset_options_keep_our_defaults(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["uri"] == f"file://{tmp_path}/fast/b6d0c5c2-8a51-4f8e-9f5e-1d2c3b4a5f60"
    assert seen["size"] == 4 << 20 and seen["meta"] == {"store": "fast"}
    assert seen["md5"] and seen["multihash"] and seen["verified"] and seen["range"]
    assert seen["fsync"] is False  # the operator set it
    assert seen["thin"] is True  # ours (glance_store's default is off): not set, not passed
    assert seen["url_prefix"] == f"file://{tmp_path}/fast/"
    assert seen["reusable"]
