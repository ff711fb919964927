"""Welcome emails per list (the deliverability issue, migration 0029).

A list may have one welcome email: a subject and a Markdown body, personalised like an
issue (``{{ subscriber.name }}``, ``{{ subscriber.attributes.… }}``, the same bounded
sandbox), switched on or off. It goes to a reader once per list, when their membership is
confirmed:

* a confirmation link (the form's double opt-in, an opt-in import's email), a sign-up to a
  single-opt-in list, a join in the preference centre: yes — whatever confirmed the
  membership, or the address it waited for, in that transaction;
* a ``confirmed`` import, a member added by the API or the admin: no (the operator
  attests consent; nobody joined anything just now);
* a second confirmation, a replayed link, leaving and joining again: no
  (``list_welcomes_sent`` remembers every reader and list welcomed);
* a list whose welcome is off (or has none) at that moment: no, and switching it on
  later welcomes nobody retroactively;
* an erased reader is forgotten, their welcomes with them: signing up again is a new
  reader.

Its ``List-Unsubscribe`` link (and the footer's) names the list (``&list=``): one click
leaves that list alone, as an issue's leaves the issue's lists.

The email is rendered in the confirming transaction and queued as a ``welcome`` delivery
carrying its message (the transactional outbox, like the confirmation email); why that
shape keeps the previous release safe is in migration 0029's docstring.
"""
