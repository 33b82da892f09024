"""Two warehouses side by side, table by table: rows, and the largest difference per number column.

    python -m benchmarks.compare_warehouses BEFORE.duckdb AFTER.duckdb

For a change that must not move a number (a refactor): every intermediate and mart table and
every table the Python analyses write is read from both files, its rows put in the same order
(by every column that is not a float), and compared: the row counts, the columns, and per
numeric column the largest absolute difference (NaN equal to NaN). Staging views read the lake
itself and are left out; so is dbt's bookkeeping of when each partition was built. Prints, asserts
nothing.
"""

from __future__ import annotations

import argparse

import duckdb
import numpy as np
import pandas as pd

SKIPPED = {"incremental_partitions"}  # build times, not data


def relations(connection: duckdb.DuckDBPyConnection) -> list[str]:
    names = connection.execute(
        "select table_name from information_schema.tables where table_schema = 'main' order by table_name"
    ).fetchall()
    return [name for (name,) in names if not name.startswith("stg_") and name not in SKIPPED]


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in frame.columns if not pd.api.types.is_float_dtype(frame[c]) and _scalar(frame[c])]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True) if keys else frame


def _scalar(column: pd.Series) -> bool:
    """False for a column of lists (a top-k list, a fingerprint), which is neither sorted on nor compared."""
    present = column.dropna()
    return present.empty or not isinstance(present.iloc[0], list | np.ndarray)


def compare(before: pd.DataFrame, after: pd.DataFrame) -> tuple[str, float]:
    """('same' or what differs, the largest absolute difference over numeric columns)."""
    if list(before.columns) != list(after.columns):
        return f"columns differ: {sorted(set(before.columns) ^ set(after.columns))}", float("nan")
    if len(before) != len(after):
        return f"rows {len(before)} -> {len(after)}", float("nan")
    before, after = _ordered(before), _ordered(after)
    largest, problems = 0.0, []
    for column in before.columns:
        a, b = before[column], after[column]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                problems.append(f"{column}: NaN at other rows")
                continue
            both = ~np.isnan(x)
            if both.any():
                largest = max(largest, float(np.max(np.abs(x[both] - y[both]))))
        elif _scalar(a) and not a.astype(str).equals(b.astype(str)):
            problems.append(f"{column}: values differ")
    return ("same" if not problems else "; ".join(problems)), largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    args = parser.parse_args()
    with duckdb.connect(args.before, read_only=True) as a, duckdb.connect(args.after, read_only=True) as b:
        names_a, names_b = relations(a), relations(b)
        for missing in sorted(set(names_a) ^ set(names_b)):
            print(f"{missing:40s} only in {'before' if missing in names_a else 'after'}")
        print(f"{'table':40s} {'rows':>10s}  {'max |diff|':>11s}  verdict")
        for name in sorted(set(names_a) & set(names_b)):
            before, after = a.execute(f'select * from "{name}"').df(), b.execute(f'select * from "{name}"').df()
            verdict, largest = compare(before, after)
            print(f"{name:40s} {len(after):>10,d}  {largest:>11.3g}  {verdict}")


if __name__ == "__main__":
    main()
