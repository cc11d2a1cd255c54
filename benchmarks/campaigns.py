"""Campaign documents of the shapes the benchmarks measure."""

from __future__ import annotations

from typing import Any

# Four deliveries per treatment group, as in the 32-task shape.
PARSE_DESTINATIONS = ("klaviyo", "attentive", "criteo", "review_files")
SUBS = ("active", "cooling down", "at risk")
GROUPS = ("a", "b")

PLATFORM_ATTRIBUTES: dict[str, tuple[str, dict[str, str]]] = {
    "klaviyo": (
        "klaviyo",
        {
            "email": "email",
            "customer_id": "external_id",
            "given_name": "first_name",
            "surname": "last_name",
            "phone": "phone_number",
            "predicted_clv": "predicted_clv",
        },
    ),
    "attentive": ("attentive", {"phone": "phone"}),
    "criteo": ("criteo", {"email": "email"}),
    "tiktok": (
        "tiktok_ads",
        {"email": "EMAIL", "phone": "PHONE", "apple_ad_id": "IDFA", "android_ad_id": "AAID"},
    ),
    "facebook": (
        "facebook_ads",
        {
            "customer_id": "EXTERN_ID",
            "email": "EMAIL",
            "phone": "PHONE",
            "given_name": "FN",
            "surname": "LN",
            "city": "CT",
            "state": "ST",
            "postal": "ZIP",
            "country": "COUNTRY",
            "gender": "GEN",
            "birthdate": "DOBY",
        },
    ),
}
PLATFORMS = tuple(PLATFORM_ATTRIBUTES)


def _platform(name: str, *, dry_run: bool = True) -> dict[str, Any]:
    dtype, attributes = PLATFORM_ATTRIBUTES[name]
    return {
        "type": dtype,
        "conn_id": f"{dtype}_default",
        "dry_run": dry_run,
        "attributes": dict(attributes),
    }


def parse_campaign(index: int) -> dict[str, Any]:
    """Campaign ``index`` of the parse benchmark: 3 sub-audiences x 2 groups x 4 deliveries.

    build_audience + 6 x (project + 4 exports) + write_manifest = 32 tasks.
    """
    destinations: dict[str, Any] = {n: _platform(n) for n in PARSE_DESTINATIONS[:3]}
    destinations["review_files"] = {
        "type": "local",
        "attributes": {"customer_id": "customer_id", "email": "email"},
        "options": {"path": "review", "format": "csv"},
    }
    return {
        "name": f"bench_campaign_{index:05d}",
        "description": f"Benchmark campaign {index}",
        "owner": "bench",
        "tags": ["bench"],
        "schedule": {"cron": "0 6 * * 1", "start_date": "2026-11-02", "timezone": "UTC"},
        "source": {
            "conn_id": "bench_db",
            "table": "merged_customers",
            "customer_id": "customer_id",
            "include": ["lifecycle_status IS NOT NULL"],
        },
        "sub_audiences": [
            {
                "name": sub,
                "condition": f"lifecycle_status = '{sub}'",
                "treatment_groups": [
                    {"name": g, "percentage": 50, "destinations": list(PARSE_DESTINATIONS)}
                    for g in GROUPS
                ],
            }
            for sub in SUBS
        ],
        "destinations": destinations,
    }


def pipeline_campaign(name: str = "bench_pipeline", *, dry_run: bool = True) -> dict[str, Any]:
    """Every customer in one group sent to the five platforms (the build/project benchmark)."""
    return {
        "name": name,
        "source": {"conn_id": "bench_db", "table": "merged_customers"},
        "sub_audiences": [
            {
                "name": "everyone",
                "condition": "TRUE",
                "treatment_groups": [
                    {"name": "all", "percentage": 100, "destinations": list(PLATFORMS)}
                ],
            }
        ],
        "destinations": {n: _platform(n, dry_run=dry_run) for n in PLATFORMS},
    }


# The end-to-end benchmark's nine live destinations: five platforms, four file stores.
E2E_STORES: dict[str, dict[str, Any]] = {
    "s3": {"type": "s3", "options": {"bucket": "bench-e2e", "prefix": "s3", "format": "parquet"}},
    "gcs": {"type": "gcs", "options": {"bucket": "bench-e2e", "prefix": "gcs", "format": "csv"}},
    "azure_blob": {
        "type": "azure_blob",
        "options": {"container": "bench-e2e", "prefix": "azure", "format": "csv"},
    },
    "sftp": {
        "type": "sftp",
        "options": {"remote_dir": "bench-e2e", "format": "csv", "compression": "gzip"},
    },
}
STORE_ATTRIBUTES = {
    "customer_id": "customer_id",
    "email": "email",
    "given_name": "first_name",
    "phone": "phone",
    "predicted_clv": "predicted_clv",
    "lifecycle_status": "lifecycle_status",
}
# (sub-audience, condition, [(treatment group, percentage, destinations)]): the paid platforms
# and e-mail get the small high-value segment, SMS and display the large active one, as a
# campaign would; every destination gets one group. The rest of the customers is a holdout.
E2E_SUBS: list[tuple[str, str, list[tuple[str, int, tuple[str, ...]]]]] = [
    (
        "at risk high value",
        "lifecycle_status = 'at risk' AND is_high_value",
        [("email", 50, ("klaviyo", "sftp")), ("paid social", 40, ("tiktok", "facebook"))],
    ),
    (
        "active",
        "lifecycle_status = 'active'",
        [("sms", 40, ("attentive", "s3")), ("display", 50, ("criteo", "gcs", "azure_blob"))],
    ),
]


def e2e_campaign(name: str = "bench_e2e", *, max_rows_per_file: int = 1_000_000) -> dict[str, Any]:
    """Every customer of the table: two sub-audiences, each a 10% control group and two
    treatment groups sent live (no dry run) to the nine destinations between them; the other
    customers are a holdout control group."""
    destinations: dict[str, Any] = {
        n: {**_platform(n, dry_run=False), "conn_id": f"bench_{PLATFORM_ATTRIBUTES[n][0]}"}
        for n in PLATFORMS
    }
    for n, spec in E2E_STORES.items():
        destinations[n] = {
            "type": spec["type"],
            "conn_id": f"bench_{n}",
            "attributes": dict(STORE_ATTRIBUTES),
            "options": {
                **spec["options"],
                "max_rows_per_file": max_rows_per_file,
                "success_marker": "_SUCCESS",
            },
        }
    return {
        "name": name,
        "source": {"conn_id": "bench_db", "table": "merged_customers"},
        "sub_audiences": [
            {
                "name": sub,
                "condition": condition,
                "treatment_groups": [
                    {"name": "control", "percentage": 10, "control": True},
                    *(
                        {"name": g, "percentage": pct, "destinations": list(dests)}
                        for g, pct, dests in groups
                    ),
                ],
            }
            for sub, condition, groups in E2E_SUBS
        ],
        "remaining": {
            "name": "others",
            "treatment_groups": [{"name": "holdout", "percentage": 100, "control": True}],
        },
        "destinations": destinations,
    }
