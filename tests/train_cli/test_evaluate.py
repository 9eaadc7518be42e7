"""``catviz-eval``'s own help and exit codes (end-to-end scoring: test_train.py, flags: test_config.py)."""

import pytest

from train_cli import evaluate


def test_help_gives_evals_own_exit_codes_not_the_trainers(capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "exit codes: 0 success; 1 failure" in out and "130 interrupted (Ctrl-C)" in out
    assert "--compare without two checkpoints or --report" in out
    assert "diverged" not in out and "run folder" not in out


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    def interrupt(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "read_meta", interrupt)
    assert evaluate.main([str(tmp_path / "a.safetensors")]) == 130
    assert capsys.readouterr().err == "catviz-eval: interrupted\n"
