"""Child process of the parse benchmark: build a DagBag over one folder and report as JSON.

Run in a fresh interpreter per measurement, as Airflow's DAG processor does.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    folder = sys.argv[1]
    t0 = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    t1 = time.perf_counter()
    bag = DagBag(dag_folder=folder)
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": t1 - t0,
                "dagbag_s": t2 - t1,
                "dags": len(bag.dags),
                "tasks": sum(len(d.tasks) for d in bag.dags.values()),
                "import_errors": len(bag.import_errors),
                # Airflow's import timeout applies to each file: the slowest one.
                "slowest_file_s": max(
                    (s.duration.total_seconds() for s in bag.dagbag_stats), default=0.0
                ),
                "files": len(bag.dagbag_stats),
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
