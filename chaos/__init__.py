"""`make chaos`: the pipeline on the three-node cluster under a seeded schedule of faults,
then an exact account of every row and every dead letter (issue #12)."""
