import pytest

from tests.service._server import train_service_run


@pytest.fixture(scope="session")
def service_run_master(tmp_path_factory):
    return train_service_run(tmp_path_factory.mktemp("svc-master") / "run")
