"""The grading pipeline around nbgrader: never shipped to students.

``course`` (the course folder and its release), ``preflight`` (archive and normalise a
submission), ``scan`` (flag code that reaches for the grader), ``intake`` (both, in a
process the driver can stop at the cap), ``sandbox`` (the bubblewrap kernel),
``scoring`` (scores from outcomes, not outputs), ``outputs`` (the cap on what a graded
notebook carries), ``feedback`` (what a student sees afterwards), ``grade`` (the
driver), ``samples`` (the bundled sample submissions), ``bundle`` (what students get)
and ``colab`` (the badge and setup cells). A whole class: ``batch`` (several students at
once, resumable, with progress), ``task`` (one student in a scratch course), ``rows``
(a student's gradebook rows), ``ledger`` (what is graded already), ``tree`` (folders as
data) and ``cluster`` (the same tasks on a Dask cluster); ``entry`` keeps ``nbgrader
autograde`` to the driver.
"""
