"""campaign-sync: campaign files in, one Airflow DAG per campaign out.

Data flows one way: spec -> audience -> projection -> export.
"""

__version__ = "0.1.0"
