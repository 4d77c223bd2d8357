"""No asyncio, no reactivex: bookkeeping fed offsets and references."""
