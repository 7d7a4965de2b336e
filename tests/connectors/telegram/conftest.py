import pytest

from tests.connectors.telegram.servers import ChannelSite, FakeBotApi

CHANNEL = "newsradar_test"
FIRST_RUN = {None: "latest.html", 121: "before-121.html", 111: "before-111.html"}


@pytest.fixture()
def channel_site():
    site = ChannelSite(CHANNEL, FIRST_RUN).start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture()
def bot_api_factory():
    servers = []

    def start(sequence: str, token: str = "123456:TEST-token_abc", **kw) -> FakeBotApi:
        server = FakeBotApi(sequence, token, **kw).start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
