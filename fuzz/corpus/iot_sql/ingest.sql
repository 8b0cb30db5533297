SELECT encode(*, 'base64') AS payload, topic(2) AS tag_id, topic(3) AS channel, clientid() AS client_id, timestamp() AS received_at FROM 'tags/+/+' WHERE topic(3) = 'fix' OR topic(3) = 'event'
