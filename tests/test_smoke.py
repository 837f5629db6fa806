def test_read_team_with_heroes(client, seeded, queries):
    response = client.get("/teams/1")
    assert response.status_code == 200
    assert response.headers["x-query-count"] == "2"
    assert queries.count == 2
