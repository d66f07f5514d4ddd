from engine.io.eye_table import left_alone_note


def test_left_alone_note_names_at_most_five_exams_a_table_has_and_the_run_does_not():
    assert left_alone_note("eyes.csv", ["A", "B"], ["A", "B", "C"], "the photos") is None
    note = left_alone_note("eyes.csv", list("GFEDCBA") + ["Z"], ["Z"], "the exams found")
    assert note == "7 exam(s) of eyes.csv not among the exams found (left alone): A, B, C, D, E ..."
    assert left_alone_note("t.csv", ["B", "A"], iter(()), "the photos").endswith("the photos (left alone): A, B")
