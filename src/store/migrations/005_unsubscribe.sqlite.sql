-- Email unsubscribes (the signed link in every notification mail, RFC 8058 one-click):
-- the address leaves the channel's addresses and is recorded in unsubscribed, a JSON array
-- of {"address", "at"} (at: ms since the epoch), so the channel shows who left and when.
-- A notification remembers the recipients it already reached (JSON array), because each
-- recipient gets a mail of their own (their own unsubscribe link): a retry after a partial
-- failure mails only those still missing.
ALTER TABLE notification_channels ADD COLUMN unsubscribed TEXT NOT NULL DEFAULT '[]';
ALTER TABLE notifications ADD COLUMN delivered_to TEXT;
