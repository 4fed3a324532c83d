"""The control plane's partner and fleet reads enforce the portal's scope server-side."""

from __future__ import annotations

from pathlib import Path

from portal_support import ALICE, BOB, OPERATOR, login, portal_plane

TOKEN = "an-admin-token-long-enough"


def test_a_partner_login_reads_its_own_partner_api_and_gets_404_for_another(
    tmp_path: Path,
) -> None:
    p = portal_plane(tmp_path, admin_token=TOKEN)
    with p.client() as c:
        for path in ("/v1/partners/isp-a/alerts", "/v1/partners/isp-a/traffic"):
            assert c.get(path).status_code == 401  # no login, no token
        login(c, ALICE)
        assert c.get("/v1/partners/isp-a/alerts").status_code == 200
        assert c.get("/v1/partners/isp-a/traffic").json()["partner"] == "isp-a"
        for path in ("/v1/partners/isp-b/alerts", "/v1/partners/isp-b/traffic"):
            r = c.get(path)
            assert r.status_code == 404, path
        # fleet-wide reads are the operator's
        assert c.get("/v1/appliances").status_code == 401
        assert c.get("/v1/appliances/b1").status_code == 401
        assert c.get("/v1/routes").status_code == 401
    with p.client() as c:
        login(c, BOB)
        assert c.get("/v1/partners/isp-a/traffic").status_code == 404
    with p.client() as c:
        login(c, OPERATOR)
        assert c.get("/v1/partners/isp-b/alerts").status_code == 200
        assert {a["id"] for a in c.get("/v1/appliances").json()} >= {"a1", "b1"}
    with p.client() as c:  # tools keep using the admin token
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert c.get("/v1/appliances", headers=auth).status_code == 200
        assert c.get("/v1/partners/isp-b/traffic", headers=auth).status_code == 200
        assert c.get("/v1/steering/explain?ip=10.1.2.3&title=t1", headers=auth).status_code == 200


def test_without_an_admin_token_the_plane_is_open_but_a_partner_login_stays_scoped(
    tmp_path: Path,
) -> None:
    p = portal_plane(tmp_path)
    with p.client() as c:
        assert c.get("/v1/partners/isp-b/alerts").status_code == 200  # development plane
        login(c, ALICE)
        assert c.get("/v1/partners/isp-b/alerts").status_code == 404
