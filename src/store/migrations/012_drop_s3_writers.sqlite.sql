-- Migration 009 made a table for one S3 batch writer per integration under a lease; no
-- code ever used it. What keeps to one writer: a node appends to and closes an
-- integration's open batch only under the batch row's lock, taken with SKIP LOCKED on
-- PostgreSQL (SQLite has one node), and uploads a closed batch only under that batch's
-- lease. An unused table only misleads.
DROP TABLE s3_writers;
