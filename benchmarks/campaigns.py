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
