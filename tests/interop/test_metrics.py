"""GET /metrics, parsed by prometheus_client's own text-format parser."""

import math

import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import HTTP_TIMEOUT_SECONDS


def scrape(sesame) -> dict:
    """Return every sample of GET /metrics, keyed by name and sorted label pairs."""
    response = requests.get(f"{sesame.issuer}/metrics", timeout=HTTP_TIMEOUT_SECONDS)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def families(sesame) -> dict:
    """Return the metric families of GET /metrics, keyed by name."""
    response = requests.get(f"{sesame.issuer}/metrics", timeout=HTTP_TIMEOUT_SECONDS)
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def value(samples: dict, name: str, **labels: str) -> float:
    """Return one sample's value, or 0 for a series not yet created."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_tokens_and_errors(sesame):
    client = sesame.add_client("client", scopes=["read"])
    before = scrape(sesame)

    for _ in range(3):
        response = requests.post(
            sesame.token_endpoint,
            auth=(client["id"], client["secret"]),
            data={"grant_type": "client_credentials", "scope": "read"},
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        assert response.status_code == 200
    wrong_secret = requests.post(
        sesame.token_endpoint,
        auth=(client["id"], client["secret"] + "x"),
        data={"grant_type": "client_credentials"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert wrong_secret.status_code == 401
    for _ in range(2):
        unknown_grant = requests.post(
            sesame.token_endpoint,
            data={"grant_type": "made_up"},
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        assert unknown_grant.status_code == 400
    revoke_without_client = requests.post(
        f"{sesame.issuer}/oauth/revoke",
        data={"token": "x"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert revoke_without_client.status_code == 401

    after = scrape(sesame)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("sesame_tokens_issued_total", grant="client_credentials") == 3
    assert moved("sesame_oauth_errors_total", error="invalid_client") == 2
    assert moved("sesame_oauth_errors_total", error="unsupported_grant_type") == 2
    token_route = {"route": "/oauth/token", "method": "POST"}
    assert moved("sesame_http_requests_total", status="200", **token_route) == 3
    assert moved("sesame_http_requests_total", status="400", **token_route) == 2
    assert moved("sesame_http_requests_total", status="401", **token_route) == 1
    assert moved("sesame_http_request_duration_seconds_count", **token_route) == 6


def test_metrics_histogram_well_formed(sesame):
    requests.get(f"{sesame.issuer}/healthz", timeout=HTTP_TIMEOUT_SECONDS)
    family = families(sesame)["sesame_http_request_duration_seconds"]
    assert family.type == "histogram"

    series: dict[tuple, list] = {}
    for sample in family.samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        series.setdefault(tuple(sorted(labels.items())), []).append(sample)
    assert (("method", "GET"), ("route", "/healthz")) in series

    for labels, samples in series.items():
        buckets = [s for s in samples if s.name.endswith("_bucket")]
        bounds = [float(s.labels["le"]) for s in buckets]
        counts = [s.value for s in buckets]
        count = next(s.value for s in samples if s.name.endswith("_count"))
        total = next(s.value for s in samples if s.name.endswith("_sum"))
        assert bounds == sorted(bounds), labels
        assert bounds[-1] == math.inf, labels
        assert counts == sorted(counts), labels
        assert counts[-1] == count, labels
        assert total >= 0, labels


def test_metrics_report_database_pool(sesame):
    samples = scrape(sesame)

    size = value(samples, "sesame_db_pool_connections")
    idle = value(samples, "sesame_db_pool_idle_connections")
    maximum = value(samples, "sesame_db_pool_max_connections")
    assert maximum >= 1
    assert 0 <= idle <= size <= maximum


def test_metrics_label_unknown_paths_unmatched(sesame):
    before = scrape(sesame)
    response = requests.get(f"{sesame.issuer}/no/such/path/123", timeout=HTTP_TIMEOUT_SECONDS)
    assert response.status_code == 404

    after = scrape(sesame)
    labels = {"route": "unmatched", "method": "GET", "status": "404"}
    count_before = value(before, "sesame_http_requests_total", **labels)
    count_after = value(after, "sesame_http_requests_total", **labels)
    assert count_after - count_before == 1
    assert not any("/no/such/path" in str(key) for key in after)
