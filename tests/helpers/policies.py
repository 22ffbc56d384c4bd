"""Policy texts several tests share."""

#: A policy with `count … within`, `time since`, a deadline and a before-event: slots and steps no shipped policy has.
WINDOWED = """policy "Windows and deadlines" version "1"
default forbid agent.hang_up severity high
let recent_abuse = count customer.message[abuse != none] within 1m
let warnings = count agent.warn since customer.requests_supervisor
rule busy_line {
  while recent_abuse >= 3 and time since agent.warn <= 30s
  permit agent.hang_up
}
rule warn_on_abuse {
  on customer.message[abuse in {insult, threat}]
  require agent.warn or agent.hang_up within 20s
}
rule supervisor {
  while warnings >= 2
  require agent.escalate[to == supervisor] before interaction.end
  forbid agent.hang_up
}
"""


#: Three strikes plus a `ticket.note` event that no rule reads: the base the work-per-event tests add rules to.
WORK_POLICY = """policy "Work" version "1"
event ticket.note { n: int = 0 }
default forbid agent.hang_up
let warnings = count agent.warn
let abuse = count customer.message[abuse != none] since agent.warn
rule hang_up_after_warnings {
  while warnings >= 2 and abuse >= 1
  permit agent.hang_up
}
rule warn_on_abuse {
  on customer.message[abuse == insult]
  require agent.warn within 48h
}
"""
