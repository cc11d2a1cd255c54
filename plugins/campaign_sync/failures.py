"""Which failures Airflow retries.

A *permanent* failure cannot pass by retrying: credentials or permissions refused, a missing
bucket, container or remote folder, an invalid campaign, duplicate customer ids, a contract
violation, a template escaping its folder. It is raised as ``AirflowFailException`` (here:
``PermanentError``) with a message saying what to fix, so the task fails on its first try.

Everything else (timeouts, connection resets, 5xx answers, a full disk) is *transient*: it
propagates unchanged and Airflow retries it as the campaign's ``retries`` allow; exports resume
from their checkpoints.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

# S3 error codes that a retry cannot fix (credentials, bucket, permissions).
S3_PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "InvalidAccessKeyId",
        "InvalidBucketName",
        "NoSuchBucket",
        "SignatureDoesNotMatch",
    }
)
_AWS_CODE = re.compile(r"An error occurred \((\w+)\)")


class PermanentError(AirflowFailException):
    """A failure no retry can fix; the message says what to fix. Airflow fails the task on
    its first try."""


class ContractViolation(PermanentError):
    """A task's input or output breaks what the tasks around it rely on (a missing projection,
    counts that do not add up)."""


def checked_options(model: type[M], options: dict[str, Any], where: str) -> M:
    """A destination's options, validated at run time; invalid ones (a template escaping its
    folder, say) are permanent."""
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(
            f"options.{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg'][:200]}"
            for e in exc.errors()
        )
        raise PermanentError(f"{where}: {problems}; fix the campaign file") from exc


def _s3(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return True
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) in S3_PERMANENT_CODES
    # boto3's managed transfer wraps the ClientError's text (S3UploadFailedError).
    return any(code in S3_PERMANENT_CODES for code in _AWS_CODE.findall(str(exc)))


def _gcs(exc: BaseException) -> bool:
    from google.api_core.exceptions import BadRequest, Forbidden, NotFound, Unauthorized
    from google.auth.exceptions import DefaultCredentialsError, RefreshError

    refused = (NotFound, Forbidden, Unauthorized, BadRequest, DefaultCredentialsError, RefreshError)
    return isinstance(exc, refused)


def _azure(exc: BaseException) -> bool:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
    )

    if isinstance(exc, ClientAuthenticationError | ResourceNotFoundError):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in (400, 401, 403, 404)


def _sftp(exc: BaseException) -> bool:
    from paramiko.ssh_exception import AuthenticationException, BadHostKeyException

    return isinstance(exc, AuthenticationException | BadHostKeyException)


def storage_error_is_permanent(exc: BaseException) -> bool:
    """Whether an error from a storage provider (S3, GCS, Azure Blob, SFTP) or its Airflow hook
    means the delivery cannot succeed as configured."""
    if isinstance(exc, AirflowFailException | PermissionError | FileNotFoundError):
        return True
    # A ValueError (a malformed account key, say) comes out the same on every try; a garbled
    # server answer does not.
    if isinstance(exc, ValueError) and not isinstance(exc, json.JSONDecodeError):
        return True
    # The provider hooks raise a bare AirflowException about their connection only
    # ("Invalid key JSON.", a missing key file, an unusable connection string).
    if type(exc) is AirflowException:
        return True
    return _s3(exc) or _gcs(exc) or _azure(exc) or _sftp(exc)
