# METADATA
# title: AuthZEN Todo interoperability scenario
# description: |
#   The rules of the AuthZEN interop Todo application (AuthZEN 1.0 draft 02
#   payloads), as a Tollgate bundle: data.tollgate.decision answers
#   {effect, reasons, approvers} for every input, as the engine requires.
#   Users (subject.id is the PID) and their attributes (id: email, roles) are
#   bundle data, data.todo.users: the scenario's PIP. A todo's owner arrives
#   as resource.properties.ownerID, which Tollgate's AuthZEN mapping passes
#   as input.resource.attributes.ownerID.
#
#   can_read_user and can_read_todos are allowed to anyone, known user or not
#   (the scenario says "always"); every other action fails closed for a
#   subject that is not a known user (UNKNOWN_SUBJECT) and any action not in
#   the scenario is denied (UNKNOWN_ACTION).
package tollgate

# user is the subject's PIP record, undefined for an unknown subject.
user := data.todo.users[input.actor.id]

has_role(r) if r in user.roles

owns_todo if {
	owner := input.resource.attributes.ownerID
	is_string(owner)
	owner == user.id
}

always := {"can_read_user", "can_read_todos"}

# What each role-gated action needs, as [code, message] findings.
grants contains ["TODO_ROLE_PERMITS", sprintf("role %s may create todos", [r])] if {
	input.action == "can_create_todo"
	some r in ["admin", "editor"]
	has_role(r)
}

grants contains ["TODO_ROLE_PERMITS", "role evil_genius may update any todo"] if {
	input.action == "can_update_todo"
	has_role("evil_genius")
}

grants contains ["TODO_ROLE_PERMITS", "role admin may delete any todo"] if {
	input.action == "can_delete_todo"
	has_role("admin")
}

grants contains ["TODO_OWNER_EDITOR", sprintf("an editor may %s their own todo", [verb])] if {
	some action, verb in {"can_update_todo": "update", "can_delete_todo": "delete"}
	input.action == action
	has_role("editor")
	owns_todo
}

# why_not explains a refusal of a known user.
why_not := {
	"can_create_todo": "creating a todo needs role admin or editor",
	"can_update_todo": "updating a todo needs role evil_genius, or role editor and owning the todo",
	"can_delete_todo": "deleting a todo needs role admin, or role editor and owning the todo",
}

deny(code, message) := {"effect": "DENY", "reasons": [{"code": code, "message": message}], "approvers": []}

default decision := {
	"effect": "DENY",
	"reasons": [{"code": "UNKNOWN_ACTION", "message": "the Todo scenario has no such action"}],
	"approvers": [],
}

decision := {"effect": "ALLOW", "reasons": [{"code": "TODO_ALWAYS_ALLOWED", "message": sprintf("%s is allowed to anyone", [input.action])}], "approvers": []} if {
	input.action in always
}

decision := deny("UNKNOWN_SUBJECT", sprintf("subject %s is not a user of the Todo scenario", [input.actor.id])) if {
	why_not[input.action]
	not user
}

decision := {"effect": "ALLOW", "reasons": reasons, "approvers": []} if {
	why_not[input.action]
	count(grants) > 0
	reasons := [{"code": g[0], "message": g[1]} | some g in sort(grants)]
}

decision := deny("TODO_NOT_PERMITTED", why_not[input.action]) if {
	why_not[input.action]
	user
	count(grants) == 0
}
