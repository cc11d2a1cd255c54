"""Airflow DAG file: one DAG per campaign file in include/campaigns.

Everything is in ``campaign_sync.factory``; set CAMPAIGN_SYNC_CAMPAIGNS_DIR to read another folder,
CAMPAIGN_SYNC_PARSE_CACHE to move the cache of validated campaigns (``off`` to disable it).
For thousands of campaigns, replace this file with copies named
``campaign_sync_dags_shard_<i>_of_<n>.py`` (i = 0..n-1): each builds a share of the DAGs, within
its own ``dagbag_import_timeout``.
"""

from campaign_sync.factory import build_dags, default_cache, shard_from_file

globals().update(build_dags(cache=default_cache(), shard=shard_from_file(__file__)))
