from tests.web.conftest import csrf_of
def test_smoke(person, demo):
    c = person("admin")
    for url in ["/", "/alerts", "/quarantine", "/lots/trace?lot_number=4121Z045", "/stores/1", "/stores/4", "/units/5", "/units/5?range=30d", "/units/5/chart?range=7d", "/overview/1", "/overview/2", "/centres/4/planner", "/stores/1/fefo?product_id=1&doses=500", "/centres/4/suggestion?product_id=1&session_date=2030-01-01", "/stores/1/stock"]:
        r = c.get(url); assert r.status_code == 200, (url, r.get_data(as_text=True)[-3000:])
