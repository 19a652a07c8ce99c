import cachekit


def test_version_is_exported() -> None:
    assert cachekit.__version__ == "0.1.0.dev0"
