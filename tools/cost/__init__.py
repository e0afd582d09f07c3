"""Cost: prices before spending, spend by period, ledger accrual, budgets."""
