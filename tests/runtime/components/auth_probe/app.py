"""Test component: authenticates the request with the shared library inside WebAssembly.

It uses the real seams. Settings come from the `default` key-value store, Spin
variables and the component environment. The JWKS is fetched with
`platform.spin_fetch` and cached in the `default` store. The response is 200 with `{"sub", "pure_rs256"}`, or the
library's problem response.
"""

import json
import os

from codethings import auth, config, jwt_compat, platform
from codethings.problems import ProblemError
from spin_sdk import http
from spin_sdk.http import Request, Response


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        try:
            store = platform.open_default_store()
            settings = config.load_settings(store, platform.SpinVariables(), os.environ)
            identity = auth.authenticate(request.headers, settings, store, platform.spin_fetch)
        except ProblemError as error:
            status, headers, body = error.to_response_parts()
            return Response(status, headers, body)
        body = json.dumps({"sub": identity.sub, "pure_rs256": _pure_rs256()}).encode()
        return Response(200, {"content-type": "application/json"}, body)


def _pure_rs256() -> bool:
    algorithm = jwt_compat.jwt.get_algorithm_by_name("RS256")
    return isinstance(algorithm, jwt_compat.PureRS256Algorithm)
