from pathlib import Path

import pytest

from hearth.config import ConfigError, Secret, Settings, require


def test_settings_read_every_variable(tmp_path: Path) -> None:
    env = {
        "HEARTH_DATA_DIR": str(tmp_path / "d"),
        "SHOPIFY_API_URL": "https://my-shop.myshopify.com",
        "SHOPIFY_ACCESS_TOKEN": "shpat_secret",
        "AMAZON_SP_API_URL": "https://sellingpartnerapi-na.amazon.com",
        "AMAZON_LWA_URL": "https://api.amazon.com",
        "AMAZON_CLIENT_ID": "amzn1.application-oa2-client.x",
        "AMAZON_CLIENT_SECRET": "cs",
        "AMAZON_REFRESH_TOKEN": "Atzr|x",
        "AMAZON_MARKETPLACE_IDS": "ATVPDKIKX0DER, A2EUQ1WTGCTBG2",
        "FACEBOOK_GRAPH_URL": "https://graph.facebook.com",
        "FACEBOOK_ACCESS_TOKEN": "EAAB",
        "FACEBOOK_AD_ACCOUNT_ID": "123",
        "SENDGRID_API_HOST": "https://api.sendgrid.com",
        "SENDGRID_API_KEY": "SG.x",
        "SENDGRID_WEBHOOK_PUBLIC_KEY": "MFkw",
    }
    s = Settings.from_env(env)
    assert s.data_dir == (tmp_path / "d").resolve()
    assert s.state_path == s.data_dir / "state.sqlite"
    assert s.warehouse_path == s.data_dir / "warehouse.duckdb"
    assert s.shopify.api_version == "2026-04"
    assert s.amazon.marketplace_ids == ("ATVPDKIKX0DER", "A2EUQ1WTGCTBG2")
    assert s.facebook.api_version == "v25.0"
    assert s.sendgrid.api_key == "SG.x"


def test_secrets_never_show_in_repr() -> None:
    s = Settings.from_env({"SHOPIFY_ACCESS_TOKEN": "shpat_topsecret", "SENDGRID_API_KEY": "SG.topsecret"})
    text = repr(s)
    assert "topsecret" not in text
    assert isinstance(s.shopify.access_token, Secret)
    assert s.shopify.access_token.reveal() == "shpat_topsecret"


def test_default_data_dir_is_local_data() -> None:
    assert Settings.from_env({}).data_dir == Path("./data").resolve()


def test_missing_setting_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SHOPIFY_ACCESS_TOKEN is not set"):
        require(Settings.from_env({}).shopify.access_token, "SHOPIFY_ACCESS_TOKEN")
