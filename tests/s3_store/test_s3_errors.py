"""The S3 error boundary, and the core retry policy over it, as pure logic (no server:
botocore's own exception values stand in for the answers). The real-server tests cover
the same paths end to end (test_s3_failures.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
    SSLError,
)
from glance_store_ng.drivers.s3.errors import S3Context, is_retryable

from glance_store_ng import errors
from glance_store_ng.retry import RetryPolicy


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


RETRYABLE = [
    client_error("InternalError", 500),
    client_error("ServiceUnavailable", 503),
    client_error("SlowDown", 503),
    client_error("TooManyRequests", 429),
    client_error("Throttling", 400),
    client_error("RequestTimeout", 400),
    EndpointConnectionError(endpoint_url="http://x"),
    ConnectionClosedError(endpoint_url="http://x"),
    ReadTimeoutError(endpoint_url="http://x"),
    ConnectionResetError(),
    TimeoutError(),
]
PERMANENT = [
    client_error("AccessDenied", 403),
    client_error("SignatureDoesNotMatch", 403),
    client_error("NoSuchKey", 404),
    client_error("InvalidArgument", 400),
    client_error("PreconditionFailed", 412),
    SSLError(endpoint_url="https://x", error="bad certificate"),
    ParamValidationError(report="bad"),
    ValueError("not a transport error"),
]


CONTEXT = S3Context("bulk", "http://s3.example", "images", "AKIDEXAMPLE", "s3cr3t/k3y")


def call(policy: RetryPolicy, request):
    """``request()`` as the driver sends every request: in the boundary, under the policy."""

    def once():
        with CONTEXT.errors("doing x"):
            return request()

    return policy.call(once)


@pytest.mark.parametrize("exc", RETRYABLE, ids=repr)
def test_retryable(exc):
    assert is_retryable(exc)
    with pytest.raises(errors.StoreError) as caught, CONTEXT.errors("doing x"):
        raise exc
    assert caught.value.retry is errors.Retry.TEMPORARY


@pytest.mark.parametrize("exc", PERMANENT, ids=repr)
def test_never_retried(exc):
    assert not is_retryable(exc)
    calls = []

    def fail():
        calls.append(1)
        raise exc

    with pytest.raises((errors.StoreError, type(exc))) as caught:
        call(RetryPolicy(attempts=5, base=0), fail)
    assert len(calls) == 1
    if isinstance(caught.value, errors.StoreError):
        assert caught.value.retry is errors.Retry.PERMANENT
    else:  # not the client's exception: it passes through unchanged
        assert caught.value is exc


def test_a_damaged_body_is_temporary_so_its_part_is_sent_again():
    with pytest.raises(errors.ChecksumMismatch) as caught, CONTEXT.errors("doing x"):
        raise client_error("BadDigest", 400)
    assert caught.value.retry is errors.Retry.TEMPORARY


def test_retried_until_it_passes_then_until_attempts_are_spent():
    outcomes = [client_error("SlowDown", 503), ConnectionResetError(), "done"]

    def flaky():
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    assert call(RetryPolicy(attempts=3, base=0), flaky) == "done"

    calls = []

    def down():
        calls.append(1)
        raise EndpointConnectionError(endpoint_url="http://x")

    with pytest.raises(errors.BackendUnavailable) as caught:
        call(RetryPolicy(attempts=4, base=0), down)
    assert len(calls) == 4
    assert caught.value.retry is errors.Retry.EXHAUSTED
    assert "gave up after 4 attempts" in str(caught.value)


@pytest.mark.parametrize(
    "exc, error_type, retryable",
    [
        (client_error("NoSuchBucket", 404), errors.NotFound, False),
        (client_error("NoSuchKey", 404), errors.NotFound, False),
        (client_error("InvalidAccessKeyId", 403), errors.PermissionDenied, False),
        (client_error("SignatureDoesNotMatch", 403), errors.PermissionDenied, False),
        (client_error("QuotaExceeded", 403), errors.StorageFull, False),
        (client_error("InternalError", 500), errors.BackendUnavailable, True),
        (EndpointConnectionError(endpoint_url="http://x"), errors.BackendUnavailable, True),
        (SSLError(endpoint_url="https://x", error="e"), errors.BackendUnavailable, False),
    ],
    ids=repr,
)
def test_translation(exc, error_type, retryable):
    with pytest.raises(error_type) as caught, CONTEXT.errors("doing x"):
        raise exc
    assert caught.value.retryable is retryable
    assert "bulk: doing x" in str(caught.value)


def test_messages_name_the_access_key_and_mask_an_echoed_secret():
    echoed = ClientError(
        {
            "Error": {"Code": "SignatureDoesNotMatch", "Message": "key s3cr3t/k3y is wrong"},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        },
        "GetObject",
    )
    with pytest.raises(errors.PermissionDenied) as caught, CONTEXT.errors("reading"):
        raise echoed
    assert "AKIDEXAMPLE" in str(caught.value)
    assert "s3cr3t/k3y" not in str(caught.value)


def test_retries_spent_say_so_and_are_marked_exhausted():
    def down():
        raise EndpointConnectionError(endpoint_url="http://s3.example")

    with pytest.raises(errors.BackendUnavailable) as caught:
        call(RetryPolicy(attempts=5, base=0), down)
    assert "gave up after 5 attempts" in str(caught.value)
    assert "is the S3 server at http://s3.example running?" in str(caught.value)
    assert caught.value.retry is errors.Retry.EXHAUSTED
    assert caught.value.retryable  # later
