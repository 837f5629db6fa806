"""The reference API, done right: the baseline every lesson's `fixed` variant is measured against."""
