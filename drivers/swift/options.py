"""The swift driver's options: glance_store's names and meanings, and ours.

``glance-store-ng drivers`` lists them with their help texts and defaults.
"""

from glance_store_ng.options import Option

__all__ = ["OPTIONS"]

OPTIONS = (
    Option("swift_store_auth_address", help="Auth address, e.g. http://host:8080/auth/v1.0."),
    Option("swift_store_user", help="User: account:user (tempauth) or project:user (v3)."),
    Option("swift_store_key", secret=True, help="The user's key or password."),
    Option(
        "swift_store_auth_version",
        default="3",
        choices=("1", "3"),
        help="1: v1 auth (tempauth, swauth); 3: Keystone v3 (needs keystoneauth1).",
    ),
    Option(
        "swift_store_user_domain_id",
        help="Keystone v3: id of the user's domain (default: 'default' unless a name is set).",
    ),
    Option("swift_store_user_domain_name", help="Keystone v3: name of the user's domain."),
    Option(
        "swift_store_project_domain_id",
        help="Keystone v3: id of the project's domain (default: 'default' unless a name is set).",
    ),
    Option("swift_store_project_domain_name", help="Keystone v3: name of the project's domain."),
    Option(
        "swift_store_config_file",
        help="INI file of credential references; locations are then swift+config://REF/...",
    ),
    Option(
        "default_swift_reference",
        default="ref1",
        help="The reference of swift_store_config_file that adds use.",
    ),
    Option("swift_store_container", default="glance", help="Container images go to."),
    Option(
        "swift_store_multi_tenant",
        "bool",
        default=False,
        help="Keep each image in the requesting user's account, in a container of its own "
        "(<container>_<id>, always created), with the user's token: every call needs the "
        "user's context (context=, or using_context for gc).",
    ),
    Option(
        "swift_store_admin_tenants",
        "list",
        default=[],
        help="Multi-tenant: ids of the projects given read and write access to the images "
        "added (and shared with set_acls) while it is set.",
    ),
    Option(
        "swift_store_multiple_containers_seed",
        "int",
        default=0,
        min=0,
        max=32,
        help="Spread images over <container>_<first N characters of the id> (0: one).",
    ),
    Option(
        "swift_store_create_container_on_put",
        "bool",
        default=False,
        help="Create a missing container on add.",
    ),
    Option(
        "swift_store_large_object_size",
        "int",
        default=5120,
        min=1,
        help="MiB: larger images are stored as Static Large Objects.",
    ),
    Option(
        "swift_store_large_object_chunk_size",
        "int",
        default=32,
        min=1,
        max=5120,
        help="MiB per segment of a large object (memory: this x (concurrency + 1)).",
    ),
    Option(
        "swift_store_upload_concurrency",
        "int",
        default=4,
        min=1,
        max=64,
        help="Segments sent at the same time.",
    ),
    Option(
        "swift_store_retry_get_count",
        "int",
        default=3,
        min=0,
        help="How many times a GET broken mid-stream resumes from the last byte received.",
    ),
    Option("swift_store_cacert", help="CA bundle that signs the servers' certificates."),
    Option(
        "swift_store_auth_insecure",
        "bool",
        default=False,
        help="Do not verify the servers' TLS certificates.",
    ),
    Option("swift_store_endpoint", help="Storage URL to use instead of the one auth returns."),
    Option(
        "swift_store_region",
        help="Region of the object-store endpoint (v3 catalog, or the request's in multi-tenant).",
    ),
    Option("swift_store_endpoint_type", default="publicURL", help="Catalog interface (v3)."),
    Option("swift_store_service_type", default="object-store", help="Catalog type (v3)."),
    Option(
        "swift_store_timeout",
        "float",
        default=60.0,
        min=0.1,
        help="Seconds to wait for the server to answer or send data.",
    ),
)
