"""Operations (no Flask here): problem categories, the work-order state table, SLA clocks.

Edges (the public report form, Open311, the staff API and pages, sensors) call into this
package; one place decides what a transition may do and when a clock runs out.
"""
