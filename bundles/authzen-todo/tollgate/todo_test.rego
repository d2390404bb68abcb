# The Todo scenario's decisions for every user and rule. Run at the activation
# gate, and by `tollgate bundle test bundles/authzen-todo`.
package tollgate.todo_test

import data.tollgate

rick := "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

morty := "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

summer := "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

beth := "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

jerry := "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

stranger := "not-a-todo-user"

everyone := [rick, morty, summer, beth, jerry]

req(pid, action, owner) := {
	"actor": {"id": pid, "type": "HUMAN", "on_behalf_of": ""},
	"action": action,
	"resource": {"type": "todo", "id": "7240d0db-8ff0-41ec-98b2-34a096273b92", "attributes": {"ownerID": owner}},
	"context": {},
}

effect(pid, action, owner) := e if {
	e := tollgate.decision.effect with input as req(pid, action, owner)
}

primary(pid, action, owner) := code if {
	code := tollgate.decision.reasons[0].code with input as req(pid, action, owner)
}

test_reads_allowed_to_everyone_and_strangers if {
	every pid in array.concat(everyone, [stranger]) {
		every action in ["can_read_user", "can_read_todos"] {
			effect(pid, action, "") == "ALLOW"
		}
	}
}

test_create_needs_admin_or_editor if {
	every pid in [rick, morty, summer] {
		effect(pid, "can_create_todo", "") == "ALLOW"
	}
	every pid in [beth, jerry] {
		effect(pid, "can_create_todo", "") == "DENY"
		primary(pid, "can_create_todo", "") == "TODO_NOT_PERMITTED"
	}
}

test_update_evil_genius_any_editor_own if {
	effect(rick, "can_update_todo", "beth@the-smiths.com") == "ALLOW"
	effect(morty, "can_update_todo", "morty@the-citadel.com") == "ALLOW"
	primary(morty, "can_update_todo", "morty@the-citadel.com") == "TODO_OWNER_EDITOR"
	effect(morty, "can_update_todo", "summer@the-smiths.com") == "DENY"
	effect(summer, "can_update_todo", "summer@the-smiths.com") == "ALLOW"
	effect(summer, "can_update_todo", "rick@the-citadel.com") == "DENY"
	effect(beth, "can_update_todo", "beth@the-smiths.com") == "DENY"
	effect(jerry, "can_update_todo", "jerry@the-smiths.com") == "DENY"
}

test_delete_admin_any_editor_own if {
	effect(rick, "can_delete_todo", "jerry@the-smiths.com") == "ALLOW"
	effect(morty, "can_delete_todo", "morty@the-citadel.com") == "ALLOW"
	effect(morty, "can_delete_todo", "rick@the-citadel.com") == "DENY"
	effect(summer, "can_delete_todo", "summer@the-smiths.com") == "ALLOW"
	effect(summer, "can_delete_todo", "morty@the-citadel.com") == "DENY"
	effect(beth, "can_delete_todo", "beth@the-smiths.com") == "DENY"
	effect(jerry, "can_delete_todo", "jerry@the-smiths.com") == "DENY"
}

test_owner_must_be_a_string if {
	effect(morty, "can_update_todo", ["morty@the-citadel.com"]) == "DENY"
}

test_unknown_subject_fails_closed if {
	every action in ["can_create_todo", "can_update_todo", "can_delete_todo"] {
		effect(stranger, action, "") == "DENY"
		primary(stranger, action, "") == "UNKNOWN_SUBJECT"
	}
}

test_unknown_action_denied if {
	effect(rick, "can_launch_portal_gun", "") == "DENY"
	primary(rick, "can_launch_portal_gun", "") == "UNKNOWN_ACTION"
}

test_every_decision_has_a_reason if {
	every pid in array.concat(everyone, [stranger]) {
		every action in ["can_read_user", "can_read_todos", "can_create_todo", "can_update_todo", "can_delete_todo", "nope"] {
			d := tollgate.decision with input as req(pid, action, "morty@the-citadel.com")
			count(d.reasons) > 0
		}
	}
}
