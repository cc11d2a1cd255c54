"""A platform's Airflow connection form, declared without importing Airflow: provider metadata
is read while Airflow itself is starting, so it cannot import the hooks. The hook's
``get_connection_form_fields`` / ``get_ui_field_behaviour`` return this same declaration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BASE_URL_LABEL = "Base URL (leave empty for the platform's; set for a proxy or a test server)"
TIMEOUT_FIELD = {
    "label": "Timeout (seconds)",
    "description": "Per-call timeout.",
    "schema": {"type": ["integer", "null"], "default": 60},
}


def text_field(label: str, description: str = "", default: str | None = None) -> dict[str, Any]:
    """A text field of the connection form (Airflow's ``conn-fields`` format)."""
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    return {"label": label, "description": description, "schema": schema}


def secret_field(label: str, description: str = "") -> dict[str, Any]:
    """A masked text field of the connection form."""
    return {
        "label": label,
        "description": description,
        "schema": {"type": ["string", "null"], "format": "password"},
    }


@dataclass(frozen=True)
class ConnectionForm:
    """The connection type's form: the password's label, the login's (hidden when None), and
    extra fields (``timeout`` is always added)."""

    hook_name: str
    password_label: str = "API key"
    login_label: str | None = None
    fields: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def conn_fields(self) -> dict[str, Any]:
        """Extra fields in Airflow's ``conn-fields`` format."""
        return {**self.fields, "timeout": TIMEOUT_FIELD}

    def ui_field_behaviour(self) -> dict[str, Any]:
        """Hidden and relabelled standard fields (the hook method's format)."""
        relabeling = {"host": BASE_URL_LABEL, "password": self.password_label}
        if self.login_label:
            relabeling["login"] = self.login_label
        hidden = ["schema", "port"] + ([] if self.login_label else ["login"])
        return {"hidden_fields": hidden, "relabeling": relabeling, "placeholders": {}}

    def provider_entry(self, conn_type: str, hook_class: str) -> dict[str, Any]:
        """The connection type's entry in the provider metadata."""
        behaviour = self.ui_field_behaviour()
        return {
            "connection-type": conn_type,
            "hook-class-name": hook_class,
            "hook-name": self.hook_name,
            "conn-fields": self.conn_fields(),
            "ui-field-behaviour": {
                "hidden-fields": behaviour["hidden_fields"],
                "relabeling": behaviour["relabeling"],
                "placeholders": behaviour["placeholders"],
            },
        }
