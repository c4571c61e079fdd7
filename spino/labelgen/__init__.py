"""The few-shot label generator (SPINO's first half): heads on a frozen backbone, TTA and fusion."""
