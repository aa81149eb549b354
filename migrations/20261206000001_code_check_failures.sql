-- Each user's budget of failed code checks, across its sessions' challenges and its
-- registrations: how many checks were charged in the window that started at
-- `window_start`. A check is charged before its code is compared (a right one is given
-- back), in the statement that takes the code's own try, so concurrent guesses never get
-- more comparisons than the budget. No foreign key: a check must not fail because its user
-- was deleted a moment before, and a row is no more than a user id and two numbers.
CREATE TABLE code_check_failures (
    instance_id  TEXT        NOT NULL,
    user_id      TEXT        NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    failures     INTEGER     NOT NULL CHECK (failures >= 0),
    PRIMARY KEY (instance_id, user_id)
);
