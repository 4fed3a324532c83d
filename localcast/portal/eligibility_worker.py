"""``python -m localcast.portal.eligibility_worker``: one eligibility answer, JSON in, JSON out.

Reads a request's form (:meth:`RequestForm.to_json`) on stdin, writes the planner's
answer (:func:`localcast.portal.eligibility.evaluate`) on stdout. The portal runs
it as a child process per request (:mod:`localcast.portal.evaluator`), so the
planner's own worker processes are forked from a small single-threaded process,
never from the web server.
"""

from __future__ import annotations

import json
import sys

from localcast.portal.eligibility import RequestForm, evaluate


def main() -> int:
    form = RequestForm.from_json(json.load(sys.stdin))
    json.dump(evaluate(form), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
