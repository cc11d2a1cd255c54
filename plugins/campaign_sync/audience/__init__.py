"""Audience: the pushdown query, streaming it to staging, and group assignment."""
