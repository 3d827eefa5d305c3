"""hooks/kandji.py: the tenant's address from a host or a subdomain and region, the token permission
each endpoint needs, and Prism's column names."""

from __future__ import annotations

import pytest

from kandji_oomnitza.exceptions import ConfigurationError
from kandji_oomnitza.hooks.kandji import KandjiHook, normalise_column, permission_for


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({"host": "acme.api.kandji.io"}, "https://acme.api.kandji.io"),
        ({"host": "https://acme.api.eu.kandji.io/api/v1"}, "https://acme.api.eu.kandji.io"),
        ({"extra": {"subdomain": "acme", "region": "eu"}}, "https://acme.api.eu.kandji.io"),
        ({"extra": {"subdomain": "acme"}}, "https://acme.api.kandji.io"),
    ],
)
def test_the_api_url_comes_from_the_host_or_the_subdomain_and_region(airflow_connections, fields, url):
    airflow_connections("kandji_default", conn_type="kandji", password="t", **fields)
    assert KandjiHook().api_base_url == url


@pytest.mark.parametrize(
    ("extra", "problem"),
    [({}, "is empty and extra has no 'subdomain'"), ({"subdomain": "acme corp"}, "subdomain")],
)
def test_a_tenant_that_cannot_be_addressed_is_a_configuration_error(airflow_connections, extra, problem):
    airflow_connections("kandji_default", conn_type="kandji", password="t", extra=extra)
    with pytest.raises(ConfigurationError, match=problem):
        KandjiHook().api_base_url  # noqa: B018


def test_each_endpoint_names_the_permission_its_token_needs():
    assert permission_for("POST api/v1/devices/abc/action/lock") == "the device action 'lock'"
    assert permission_for("GET api/v1/devices/abc/details") == "Device details"
    assert permission_for("GET api/v1/devices?limit=300") == "Device list"
    assert permission_for("GET api/v1/prism/apps") == "Prism (Visibility)"
    assert (
        normalise_column(" Serial Number ") == "serial_number"
        and normalise_column("Device ID") == "device_id"
    )
