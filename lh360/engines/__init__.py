"""Engines run the steps of a plan. One small protocol each (`lh360.engines.base.Engine`)."""
