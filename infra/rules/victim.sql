SELECT encode(*, 'base64') AS payload, topic(2) AS device_id, topic(3) AS channel, clientid() AS client_id, timestamp() AS received_at FROM 'victims/+/+' WHERE topic(3) = 'position'
