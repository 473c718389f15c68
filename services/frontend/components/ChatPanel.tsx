"use client";

/**
 * Chat with the assistant. When the chatbot has no model configured (or is down) the panel
 * says so in plain words, with the chatbot's own reason, instead of offering a dead input.
 */
import { type FormEvent, useCallback, useEffect, useState } from "react";

import { api } from "../lib/client";
import { chatOffDetail } from "../lib/errors";

interface ChatStatus {
  available: boolean;
  reason: string | null;
}

interface Message {
  role: "user" | "assistant";
  text: string;
}

export default function ChatPanel({ onReply }: { onReply: () => void }) {
  const [status, setStatus] = useState<ChatStatus | null>(null);
  const [messages, setMessages] = useState<Message[]>([]);
  const [draft, setDraft] = useState("");
  const [conversationId, setConversationId] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const check = useCallback(async (): Promise<void> => {
    const result = await api<ChatStatus>("/api/chat/status");
    setStatus(result.ok ? result.data : { available: false, reason: result.error });
  }, []);

  useEffect(() => {
    void check();
  }, [check]);

  async function send(event: FormEvent<HTMLFormElement>): Promise<void> {
    event.preventDefault();
    const message = draft.trim();
    if (!message) return;
    setBusy(true);
    setError(null);
    setMessages((current) => [...current, { role: "user", text: message }]);
    setDraft("");
    const result = await api<{ reply: string; conversation_id: string }>("/api/chat", {
      method: "POST",
      body: conversationId ? { message, conversation_id: conversationId } : { message },
    });
    setBusy(false);
    if (!result.ok) {
      // 503 is the chatbot saying chat is off; show its reason where the panel's status lives.
      if (result.status === 503) setStatus({ available: false, reason: result.error });
      else setError(result.error);
      return;
    }
    setConversationId(result.data.conversation_id);
    setMessages((current) => [...current, { role: "assistant", text: result.data.reply }]);
    // The assistant may have added or completed todos.
    onReply();
  }

  const off = status !== null && !status.available;

  return (
    <aside className="panel stack" aria-label="Chat">
      <h2>Assistant</h2>
      {status === null ? <p className="muted">Checking whether chat is available…</p> : null}
      {off ? (
        <div className="chat-off stack" role="status">
          <strong>Chat is off.</strong>
          <span>{chatOffDetail(status.reason)}</span>
          <div>
            <button type="button" className="secondary" onClick={() => void check()}>
              Check again
            </button>
          </div>
        </div>
      ) : null}
      <div className="chat-log" aria-live="polite">
        {messages.map((message, index) => (
          <div key={index} className={`bubble ${message.role}`}>
            {message.text}
          </div>
        ))}
        {busy ? <p className="muted">The assistant is thinking…</p> : null}
      </div>
      {error ? (
        <p className="alert" role="alert">
          {error}
        </p>
      ) : null}
      <form className="stack" onSubmit={send}>
        <label>
          Message
          <textarea
            name="message"
            rows={3}
            maxLength={4000}
            value={draft}
            disabled={off}
            placeholder={off ? "Chat is off" : "Ask the assistant to list, add or complete todos"}
            onChange={(event) => setDraft(event.target.value)}
          />
        </label>
        <button type="submit" disabled={off || busy || !draft.trim()}>
          Send
        </button>
      </form>
    </aside>
  );
}
