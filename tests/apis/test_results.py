"""The result types present themselves (text, table, summaries) without the
tools branching on the task."""
import numpy as np

from mmdyn.apis import ClassificationResult, ClassScore, DetectionResult, Result


def _classification():
    top = [ClassScore(2, 'cat', 0.75), ClassScore(0, 'ant', 0.00001)]
    return ClassificationResult(top, np.array([0.00001, 0.25, 0.75]), (32, 32))


def _detection(n=2):
    return DetectionResult(np.array([[1, 2, 30.4, 40.6], [0, 0, 5, 5]], np.float32)[:n],
                           np.array([0.9, 0.4], np.float32)[:n], np.array([1, 0])[:n],
                           ['square', 'circle'][:n], None, (48, 64), 0.3)


def test_classification_result_presentation():
    r = _classification()
    assert isinstance(r, Result) and r.task == 'classification'
    assert r.to_text() == '  1. cat (label 2): 0.7500\n  2. ant (label 0): 1.00e-05'
    assert r.table_rows() == [('cat', 0.75, None), ('ant', 0.00001, None)]
    assert len(r.COLUMNS) == len(r.table_rows()[0]) - 1 and not r.SHOW_ANNOTATED
    assert r.headline() == 'cat  (75.00%)' and r.status() == 'top-1 cat (0.750)'


def test_detection_result_presentation():
    r = _detection()
    assert isinstance(r, Result) and r.task == 'detection' and r.SHOW_ANNOTATED
    assert r.to_text().splitlines()[0] == \
        '  square (label 1) 0.900  box [1.0, 2.0, 30.4, 40.6]'
    assert r.table_rows()[0] == ('square', float(np.float32(0.9)), '1, 2, 30, 41')
    assert len(r.COLUMNS) == 3
    assert r.headline() == '2 detection(s)' and r.status() == '2 detection(s) with score >= 0.3'
    empty = _detection(0)
    assert empty.to_text() == '  no detection with score >= 0.3' and empty.table_rows() == []
