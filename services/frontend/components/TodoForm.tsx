"use client";

/** Fields of a todo, shared by "add" and "edit". */
import { type FormEvent, useState } from "react";

import { PRIORITIES, type Priority, type Todo } from "../lib/todos";

export interface TodoDraft {
  title: string;
  description: string | null;
  due_date: string | null;
  priority: Priority;
}

export interface TodoFormProps {
  initial?: Todo;
  submitLabel: string;
  /** Resolves true when saved, so the form can clear itself. */
  onSubmit: (draft: TodoDraft) => Promise<boolean>;
  onCancel?: () => void;
}

export default function TodoForm({ initial, submitLabel, onSubmit, onCancel }: TodoFormProps) {
  const [title, setTitle] = useState(initial?.title ?? "");
  const [description, setDescription] = useState(initial?.description ?? "");
  const [dueDate, setDueDate] = useState(initial?.due_date ?? "");
  const [priority, setPriority] = useState<Priority>(initial?.priority ?? "medium");
  const [busy, setBusy] = useState(false);
  const idPrefix = initial ? `todo-${initial.id}` : "new-todo";

  async function submit(event: FormEvent<HTMLFormElement>): Promise<void> {
    event.preventDefault();
    setBusy(true);
    const saved = await onSubmit({
      title: title.trim(),
      description: description.trim() ? description : null,
      due_date: dueDate || null,
      priority,
    });
    setBusy(false);
    if (saved && !initial) {
      setTitle("");
      setDescription("");
      setDueDate("");
      setPriority("medium");
    }
  }

  return (
    <form className="stack" onSubmit={submit} aria-label={initial ? `Edit ${initial.title}` : "Add a todo"}>
      <div className="row">
        <label className="grow">
          Title
          <input
            id={`${idPrefix}-title`}
            name="title"
            required
            maxLength={200}
            value={title}
            onChange={(event) => setTitle(event.target.value)}
            placeholder="What needs doing?"
          />
        </label>
        <label>
          Due
          <input name="due_date" type="date" value={dueDate} onChange={(event) => setDueDate(event.target.value)} />
        </label>
        <label>
          Priority
          <select name="priority" value={priority} onChange={(event) => setPriority(event.target.value as Priority)}>
            {PRIORITIES.map((value) => (
              <option key={value} value={value}>
                {value}
              </option>
            ))}
          </select>
        </label>
      </div>
      <label>
        Description
        <textarea
          name="description"
          rows={2}
          maxLength={2000}
          value={description}
          onChange={(event) => setDescription(event.target.value)}
        />
      </label>
      <div className="row">
        <button type="submit" disabled={busy || !title.trim()}>
          {submitLabel}
        </button>
        {onCancel ? (
          <button type="button" className="secondary" onClick={onCancel}>
            Cancel
          </button>
        ) : null}
      </div>
    </form>
  );
}
