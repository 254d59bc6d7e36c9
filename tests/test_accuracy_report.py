"""The accuracy experiments' table: grouping over seeds, varying columns, unfinished runs."""

import json

from npdpsnn.paper.accuracy_report import find_runs, markdown_table

_HEADER = "epoch,test_accuracy,validation_accuracy,fraction_clipped,test_accuracy_ema\n"


def _run(folder, lr, seed, tests, epochs=None):
    folder.mkdir(parents=True)
    cfg = {"dataset": "mnist", "optim": {"lr": lr, "epochs": epochs or len(tests)}, "run": {"seed": seed}}
    (folder / "config.json").write_text(json.dumps(cfg))
    rows = "".join(f"{i + 1},{t},{t - 0.01},0.5,{t - 0.02}\n" for i, t in enumerate(tests))
    (folder / "metrics.csv").write_text(_HEADER + rows)
    (folder / "summary.json").write_text(json.dumps({"sigma": 1.0, "rdp_epsilon": 3.04}))


def test_seeds_are_one_row_with_mean_and_range(tmp_path):
    _run(tmp_path / "a-s0", 0.1, 0, [0.90, 0.95])
    _run(tmp_path / "a-s1", 0.1, 1, [0.90, 0.97])
    _run(tmp_path / "b", 0.2, 0, [0.90, 0.91])
    _run(tmp_path / "running", 0.3, 0, [0.5], epochs=3)
    runs = find_runs([tmp_path])
    assert [r.path.name for r in runs] == ["a-s0", "a-s1", "b"]
    lines = markdown_table(runs, [1, 2]).splitlines()
    assert lines[0].startswith("| run | optim.lr | seeds |")  # only the varying setting is a column
    assert len(lines) == 4
    assert "| a-s0 | 0.1 | 2 |" in lines[2] and "96.00 (95.00–97.00)" in lines[2]
    assert "| b | 0.2 | 1 |" in lines[3] and "| 89.00 | 90.00 | 91.00 |" in lines[3]
    assert "| 96.00 (95.00–97.00) | 94.00 (93.00–95.00) |" in lines[2]  # test and EMA over the seeds
    assert lines[2].endswith("| 95.00 (ep 2) |")  # the best epoch (extra) is the first seed's
    assert "| val. ep 1 (1st seed) |" in lines[0] and lines[0].endswith("| best epoch (extra) (1st seed) |")


def test_a_field_missing_from_an_older_record_reads_as_its_default(tmp_path):
    for name, optim in (("old", {"lr": 0.1, "epochs": 1}), ("new", {"lr": 0.2, "epochs": 1, "init_gain": 1.0})):
        _run(tmp_path / name, 0.0, 0, [0.9])
        cfg = {"dataset": "mnist", "dp": {"sigma": 1.0}, "optim": optim, "run": {"seed": 0}}
        (tmp_path / name / "config.json").write_text(json.dumps(cfg))
    header = markdown_table(find_runs([tmp_path]), [1]).splitlines()[0]
    assert header.startswith("| run | optim.lr | seeds |")  # init_gain is 1.0 in both, not a column
